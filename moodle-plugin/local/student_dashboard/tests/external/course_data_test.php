<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\external;

use core_external\external_api;

/**
 * Tests of get_course_grades and get_enrolments.
 *
 * @package    local_student_dashboard
 * @category   test
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_student_dashboard\external\get_course_grades
 * @covers     \local_student_dashboard\external\get_enrolments
 */
final class course_data_test extends \advanced_testcase {

    /**
     * Log in as a user with the sync's capabilities.
     *
     * @param string[] $capabilities Capabilities besides local/student_dashboard:manage.
     */
    protected function set_sync_user(array $capabilities): void {
        $user = $this->getDataGenerator()->create_user();
        $roleid = $this->getDataGenerator()->create_role();
        $system = \context_system::instance();
        foreach (array_merge(['local/student_dashboard:manage'], $capabilities) as $capability) {
            assign_capability($capability, CAP_ALLOW, $roleid, $system->id);
        }
        role_assign($roleid, $user->id, $system->id);
        $this->setUser($user);
    }

    /**
     * Course totals, numeric and on a scale; unknown courses are warnings.
     */
    public function test_get_course_grades(): void {
        global $CFG;
        require_once($CFG->libdir . '/gradelib.php');
        $this->resetAfterTest();
        $generator = $this->getDataGenerator();
        $course = $generator->create_course();
        $scalecourse = $generator->create_course();
        $student = $generator->create_user();
        $generator->enrol_user($student->id, $course->id, 'student');
        $generator->enrol_user($student->id, $scalecourse->id, 'student');

        $item = \grade_item::fetch_course_item($course->id);
        $item->update_final_grade($student->id, 72.5, 'test');

        $scale = $generator->create_scale(['scale' => 'Refer,Pass,Merit,Distinction']);
        $scaleitem = \grade_item::fetch_course_item($scalecourse->id);
        $scaleitem->gradetype = GRADE_TYPE_SCALE;
        $scaleitem->scaleid = $scale->id;
        $scaleitem->grademin = 1;
        $scaleitem->grademax = 4;
        $scaleitem->update();
        $scaleitem->update_final_grade($student->id, 3, 'test');

        $this->set_sync_user(['moodle/grade:viewall']);
        $result = external_api::clean_returnvalue(get_course_grades::execute_returns(),
            get_course_grades::execute([$course->id, $scalecourse->id, 999999]));
        $grades = [];
        foreach ($result['grades'] as $grade) {
            $grades[$grade['courseid']] = $grade;
        }
        $this->assertEqualsWithDelta(72.5, $grades[$course->id]['finalgrade'], 0.00001);
        $this->assertEquals(100, $grades[$course->id]['grademax']);
        $this->assertNull($grades[$course->id]['scaleitem']);
        $this->assertSame('Merit', $grades[$scalecourse->id]['scaleitem']);
        $this->assertEquals($scale->id, $grades[$scalecourse->id]['scaleid']);
        $this->assertSame('invalidcourseid', $result['warnings'][0]['warningcode']);
        $this->assertSame(999999, $result['warnings'][0]['itemid']);
    }

    /**
     * Without moodle/grade:viewall a course is a warning.
     */
    public function test_get_course_grades_needs_viewall(): void {
        $this->resetAfterTest();
        $course = $this->getDataGenerator()->create_course();
        $this->set_sync_user([]);
        $result = get_course_grades::execute([$course->id]);
        $this->assertSame('nopermissions', $result['warnings'][0]['warningcode']);
        $this->assertSame([], $result['grades']);
    }

    /**
     * Manual enrolments with status, dates and roles.
     */
    public function test_get_enrolments(): void {
        global $DB;
        $this->resetAfterTest();
        $generator = $this->getDataGenerator();
        $course = $generator->create_course();
        $active = $generator->create_user();
        $suspended = $generator->create_user();
        $generator->enrol_user($active->id, $course->id, 'student', 'manual', 1767225600, 0);
        $generator->enrol_user($suspended->id, $course->id, 'editingteacher', 'manual', 0, 0, ENROL_USER_SUSPENDED);
        $selfenrolled = $generator->create_user();
        $generator->enrol_user($selfenrolled->id, $course->id, 'student', 'self');

        $this->set_sync_user(['moodle/course:enrolreview']);
        $result = external_api::clean_returnvalue(get_enrolments::execute_returns(), get_enrolments::execute([$course->id]));
        $byuser = array_column($result['enrolments'], null, 'userid');
        $this->assertCount(2, $byuser);
        $this->assertSame(0, $byuser[$active->id]['status']);
        $this->assertSame(1767225600, $byuser[$active->id]['timestart']);
        $this->assertSame([(int) $DB->get_field('role', 'id', ['shortname' => 'student'])], $byuser[$active->id]['roleids']);
        $this->assertSame(1, $byuser[$suspended->id]['status']);
        $this->assertArrayNotHasKey($selfenrolled->id, $byuser);

        // Without course ids: every course.
        $result = get_enrolments::execute();
        $this->assertCount(2, $result['enrolments']);
    }
}
