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

namespace local_student_dashboard;

use local_student_dashboard\local\access;

/**
 * Tests of the access rule: a student sees only their own dashboard.
 *
 * @package    local_student_dashboard
 * @category   test
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 * @covers     \local_student_dashboard\local\access
 */
final class access_test extends \advanced_testcase {

    /**
     * A student gets their own record, with or without their own id.
     */
    public function test_own_dashboard(): void {
        $this->resetAfterTest();
        $student = $this->getDataGenerator()->create_user();
        $this->setUser($student);
        $this->assertEquals($student->id, access::require_target_user(0)->id);
        $this->assertEquals($student->id, access::require_target_user((int) $student->id)->id);
        $this->assertFalse(access::can_view_all());
    }

    /**
     * A student asking for another student's dashboard is refused.
     */
    public function test_student_cannot_see_another_student(): void {
        $this->resetAfterTest();
        $student = $this->getDataGenerator()->create_user();
        $other = $this->getDataGenerator()->create_user();
        $this->getDataGenerator()->get_plugin_generator('local_student_dashboard')->create_registration(['userid' => $other->id]);
        $this->setUser($student);
        $this->expectException(\required_capability_exception::class);
        access::require_target_user((int) $other->id);
    }

    /**
     * Staff with viewall may open any student's dashboard and find students by name.
     */
    public function test_staff_can_choose_a_student(): void {
        $this->resetAfterTest();
        $student = $this->getDataGenerator()->create_user(['firstname' => 'John', 'lastname' => 'Smith']);
        $this->getDataGenerator()->get_plugin_generator('local_student_dashboard')->create_registration(['userid' => $student->id]);
        $manager = $this->getDataGenerator()->create_user();
        $this->getDataGenerator()->role_assign('manager', $manager->id, \context_system::instance()->id);
        $this->setUser($manager);
        $this->assertTrue(access::can_view_all());
        $this->assertEquals($student->id, access::require_target_user((int) $student->id)->id);
        $this->assertArrayHasKey($student->id, access::search_students('smi'));
        $this->assertSame([], access::search_students('nobody-matches-this'));
    }

    /**
     * The guest user has no dashboard.
     */
    public function test_guest_is_refused(): void {
        $this->resetAfterTest();
        $this->setGuestUser();
        $this->expectException(\required_capability_exception::class);
        access::require_target_user(0);
    }
}
