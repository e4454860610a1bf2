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

namespace local_student_dashboard\privacy;

use core_privacy\local\metadata\collection;
use core_privacy\local\request\approved_contextlist;
use core_privacy\local\request\approved_userlist;
use core_privacy\local\request\userlist;
use core_privacy\local\request\writer;
use core_privacy\tests\provider_testcase;

/**
 * Tests of the privacy provider.
 *
 * @package    local_student_dashboard
 * @category   test
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_student_dashboard\privacy\provider
 */
final class provider_test extends provider_testcase {

    /**
     * Two students with data.
     *
     * @return \stdClass[] The two users.
     */
    protected function create_students(): array {
        $generator = $this->getDataGenerator();
        $plugingenerator = $generator->get_plugin_generator('local_student_dashboard');
        $students = [$generator->create_user(), $generator->create_user()];
        foreach ($students as $student) {
            $plugingenerator->create_registration(['userid' => $student->id]);
            $plugingenerator->create_payment(['userid' => $student->id]);
            $plugingenerator->create_grade(['userid' => $student->id]);
        }
        $plugingenerator->create_unit();
        return $students;
    }

    /**
     * The metadata names the three tables and the external location.
     */
    public function test_get_metadata(): void {
        $items = provider::get_metadata(new collection('local_student_dashboard'))->get_collection();
        $names = array_map(fn($item) => $item->get_name(), $items);
        $this->assertEqualsCanonicalizing(['local_student_dashboard_reg', 'local_student_dashboard_pay',
            'local_student_dashboard_grade', 'zmsync'], $names);
    }

    /**
     * The user context is found for a student with data, not for others.
     */
    public function test_get_contexts_and_users(): void {
        $this->resetAfterTest();
        [$student] = $this->create_students();
        $other = $this->getDataGenerator()->create_user();
        $context = \context_user::instance($student->id);

        $this->assertSame([(int) $context->id], array_map('intval', provider::get_contexts_for_userid($student->id)->get_contextids()));
        $this->assertCount(0, provider::get_contexts_for_userid($other->id));

        $userlist = new userlist($context, 'local_student_dashboard');
        provider::get_users_in_context($userlist);
        $this->assertSame([(int) $student->id], array_map('intval', $userlist->get_userids()));
        $userlist = new userlist(\context_system::instance(), 'local_student_dashboard');
        provider::get_users_in_context($userlist);
        $this->assertCount(0, $userlist);
    }

    /**
     * Export writes registrations, payments and grades.
     */
    public function test_export_user_data(): void {
        $this->resetAfterTest();
        [$student] = $this->create_students();
        $context = \context_user::instance($student->id);
        $this->export_context_data_for_user($student->id, $context, 'local_student_dashboard');
        $writer = writer::with_context($context);
        $this->assertTrue($writer->has_any_data());
        $pluginname = get_string('pluginname', 'local_student_dashboard');
        $data = $writer->get_data([$pluginname, get_string('privacy:path:registrations', 'local_student_dashboard')]);
        $this->assertSame('10000.00', $data->registrations[0]->total_fee);
        $data = $writer->get_data([$pluginname, get_string('privacy:path:payments', 'local_student_dashboard')]);
        $this->assertCount(1, $data->payments);
    }

    /**
     * Deleting for one user leaves the other's rows.
     */
    public function test_delete_data_for_user(): void {
        global $DB;
        $this->resetAfterTest();
        [$student, $other] = $this->create_students();
        $context = \context_user::instance($student->id);
        provider::delete_data_for_user(new approved_contextlist($student, 'local_student_dashboard', [$context->id]));
        foreach (['reg', 'pay', 'grade'] as $table) {
            $this->assertSame(0, $DB->count_records('local_student_dashboard_' . $table, ['userid' => $student->id]));
            $this->assertSame(1, $DB->count_records('local_student_dashboard_' . $table, ['userid' => $other->id]));
        }
        $this->assertSame(1, $DB->count_records('local_student_dashboard_unit'));
    }

    /**
     * Deleting a user context, and deleting a userlist.
     */
    public function test_delete_context_and_userlist(): void {
        global $DB;
        $this->resetAfterTest();
        [$student, $other] = $this->create_students();

        provider::delete_data_for_all_users_in_context(\context_system::instance());
        $this->assertSame(2, $DB->count_records('local_student_dashboard_reg'));

        provider::delete_data_for_all_users_in_context(\context_user::instance($student->id));
        $this->assertSame(0, $DB->count_records('local_student_dashboard_reg', ['userid' => $student->id]));

        $context = \context_user::instance($other->id);
        provider::delete_data_for_users(new approved_userlist($context, 'local_student_dashboard', [$student->id]));
        $this->assertSame(1, $DB->count_records('local_student_dashboard_pay', ['userid' => $other->id]));
        provider::delete_data_for_users(new approved_userlist($context, 'local_student_dashboard', [$other->id]));
        $this->assertSame(0, $DB->count_records('local_student_dashboard_pay', ['userid' => $other->id]));
    }
}
